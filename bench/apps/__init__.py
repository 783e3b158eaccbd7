"""Contender processes the bench runner starts: the plain ceiling loop and the peer apps."""
