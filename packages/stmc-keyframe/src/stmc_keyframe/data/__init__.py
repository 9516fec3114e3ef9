"""Built-in procedural motions, AMASS/HumanML3D-format loaders and the DataModule."""
