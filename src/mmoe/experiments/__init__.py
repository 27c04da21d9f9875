"""The paper's studies: the synthetic task-correlation study and the Census-Income tables."""
