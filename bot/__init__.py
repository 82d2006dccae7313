"""A multilingual help bot for people seeking asylum in the UK.

Data flows one way: transport -> dispatcher -> pure engine -> localizer -> transport.
"""

__version__ = "0.1.0"
