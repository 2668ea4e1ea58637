"""The application layer: gridshift's use cases, with domain objects in and domain objects out.

No protobuf messages, argparse namespaces or environment reads here: the entry points
(``gridshift.cli``, ``gridshift.service``) translate, and ``gridshift.bootstrap`` wires the
concrete adapters into an :class:`~gridshift.app.application.App`.

| module | use case |
| --- | --- |
| :mod:`.application` | the :class:`App`: the use cases wired together (built by ``gridshift.bootstrap``) |
| :mod:`.planning` | plan a request: validate, resolve forecasts and on-site supply, solve with risk, store (one store-failure policy) |
| :mod:`.risk` | the solve with risk figures and risk-aware plan choice over forecast scenarios |
| :mod:`.forecasts` | forecast queries: GetForecast, FindBestWindow |
| :mod:`.scoring` | scoring client-proposed schedules |
| :mod:`.plans` | stored plans: save, get, list, rebuild for reports |
| :mod:`.reports` | carbon reports |
| :mod:`.actuals` | recording observed intensity |
| :mod:`.nightly` | nightly batch runs |
| :mod:`.backtest` | replays of a real GPU trace against real carbon series |
| :mod:`.demo` | the demo's day of AI jobs on the embedded data |
"""  # noqa: E501 - a table reads better unwrapped
