"""Experience: real transitions collected into JSONL logs (:mod:`~planner.data.collect`) and a
world model's fidelity measured against them (:mod:`~planner.data.fidelity`)."""
