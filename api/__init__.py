"""The callsift scoring service (FastAPI); see issue 5."""
