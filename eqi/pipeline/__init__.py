"""Pipeline layer: plans, tasks, the run lock, stages that join I/O and science, writing."""
