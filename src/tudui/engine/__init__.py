"""Training: the Trainer (trainer.py) and what it is built from; callbacks (hooks.py) bring in higher-layer work."""
