"""Classical baselines (KNN, random forest): `python baselines.py data=english` (see README)."""

from hwr.baselines import main

if __name__ == "__main__":
    main()
