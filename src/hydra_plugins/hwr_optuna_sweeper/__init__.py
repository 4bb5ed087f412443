"""hwr's Optuna sweeper: hydra-optuna-sweeper made safe for several workers on one study.

A Hydra plugin (Hydra finds sweepers only in the `hydra_plugins` namespace package); the
hparams_search configs select it with `hydra.sweeper._target_`. See `_impl.py`.
"""
