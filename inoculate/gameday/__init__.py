"""Gamedays: experiments run in order with people watching, holding, noting and observing."""
