"""Where scores go: WebSocket fan-out and the backends (embedded or Redis) that hold registry and history."""
