"""`imf-eval` / `python -m imf.eval`: Hydra entry point over motioncore.train.run."""

from motioncore.train import hydra_entry

main = hydra_entry("pkg://imf.configs", "eval")

if __name__ == "__main__":
    main()
