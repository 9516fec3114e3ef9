"""``text-to-pose-eval ckpt_path=...``: metrics.json (test/..., baseline/...) and samples/."""

from motioncore.train import hydra_entry

main = hydra_entry("pkg://text_to_pose.configs", "eval")

if __name__ == "__main__":
    main()
