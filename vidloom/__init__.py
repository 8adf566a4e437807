"""vidloom: Ray-native video curation, text-to-video training and serving."""

__version__ = "0.1.0"
