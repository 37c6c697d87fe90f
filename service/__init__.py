"""The inference service: clip scoring, live camera streams, WebSocket/REST publishing, metrics, a web page."""
