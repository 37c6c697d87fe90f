"""Offline training and evaluation of the temporal OCR-GAN on normal footage."""
