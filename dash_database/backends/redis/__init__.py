"""The scale-out engine: a Redis server shared by every process on every host."""
