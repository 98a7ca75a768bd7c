"""notirouter watching itself: operational events (``type: notirouter``) and the heartbeat."""
