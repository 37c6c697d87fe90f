"""Live cameras: the URL policy and relay, one connection and worker per camera, their scores and snapshots."""
