"""``stdiff-train``: fit (and test) STDiff; see configs/train.yaml."""

from motioncore.train import hydra_entry

main = hydra_entry("pkg://stdiff.configs", "train")

if __name__ == "__main__":
    main()
