"""``stdiff-eval``: evaluate ckpt_path -> metrics.json (test/... and baseline/...) and samples/."""

from motioncore.train import hydra_entry

main = hydra_entry("pkg://stdiff.configs", "eval")

if __name__ == "__main__":
    main()
