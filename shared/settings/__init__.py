"""Typed settings, one dataclass per capability, and the only reader of the environment.

Every setting is read and validated once, at start-up, and a bad one fails with an error that names
it. Nothing else in the project looks at `os.environ`."""
