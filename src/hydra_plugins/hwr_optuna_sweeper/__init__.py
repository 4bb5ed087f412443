"""hwr's Optuna sweeper as a Hydra plugin (Hydra finds sweepers only in the `hydra_plugins`
namespace package). The configs select it in hydra/sweeper/optuna.yaml; the sweeper itself is
hwr.studies.sweeper.
"""
