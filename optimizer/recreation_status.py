"""What a recreation reports (ruin and recreate's insertion of the jobs taken out, in NumPy
in optimizer/ruin_recreate.py or compiled in optimizer/insertion_jit.py): every job placed,
one found no room, or the jobs placed already add more than the step allows."""

DONE, STUCK, OVER = 0, 1, 2
