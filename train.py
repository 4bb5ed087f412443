"""Train and test a character classifier: `python train.py model=cnn data=emnist` (see README)."""

from hwr.train import main

if __name__ == "__main__":
    main()
