"""tessera.corpus"""
