"""tessera.objectives"""
