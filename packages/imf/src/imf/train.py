"""`imf-train` / `python -m imf.train`: Hydra entry point over motioncore.train.run."""

from motioncore.train import hydra_entry

main = hydra_entry("pkg://imf.configs", "train")

if __name__ == "__main__":
    main()
