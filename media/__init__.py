"""Video decoding shared by training, uploads and cameras: one decode loop, one conversion to the model's input."""
