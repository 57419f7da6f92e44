"""(commands being written)"""
