"""Optuna studies run by Hydra (`hparams_search=<name>`): the search space (space), the
storage and abandoned trials (storage), the sweeper (sweeper), the job's side of a trial
(trial) and what the summary adds (report). Needs the `sweeps` extra."""
