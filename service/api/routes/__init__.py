"""HTTP and WebSocket routes, one router per resource; the work happens in the services."""
