"""Prompt Workbench: prompt engineering for Azure OpenAI, OpenAI and compatible servers, in Jupyter."""

__version__ = "0.1.0"
