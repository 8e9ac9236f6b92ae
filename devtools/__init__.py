"""Development tooling (Azurite launcher, demo); never deployed."""
