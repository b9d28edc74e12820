"""callsift training workflow: simulate, features, train, evaluate, promote.

One module per stage; each stage is a typer command of the ``callsift`` CLI.
"""
