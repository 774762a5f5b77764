"""tessera.views"""
