"""``text-to-pose-train``: fit on the configured data, then evaluate (metrics.json)."""

from motioncore.train import hydra_entry

main = hydra_entry("pkg://text_to_pose.configs", "train")

if __name__ == "__main__":
    main()
