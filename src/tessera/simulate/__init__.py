"""tessera.simulate"""
