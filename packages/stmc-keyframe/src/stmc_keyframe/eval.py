"""``stmc-keyframe-eval``: evaluate ``ckpt_path`` -> metrics.json (test/ and baseline/) + samples."""

from motioncore.train import hydra_entry

main = hydra_entry("pkg://stmc_keyframe.configs", "eval")

if __name__ == "__main__":
    main()
