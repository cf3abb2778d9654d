"""mailbot: the email side of the Digital Schools Awards Cluster Initiative."""

__version__ = "0.1.0"
