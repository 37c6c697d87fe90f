"""Uploaded clips: receiving the upload, decoding and checking the video, scoring it in the scorer thread."""
