"""Gamedays: experiments run in order while people watch, hold, note and observe."""
