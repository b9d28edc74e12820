"""The 112 call simulator: callers over time, voices, sounds and the phone channel."""
