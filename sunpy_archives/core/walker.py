"""
From a Fido query to the parameters of an archive request.

Fido hands a client an attr tree (``AttrAnd``/``AttrOr`` of attrs). Every
client turns it into one parameter block (a dict) per OR branch, then each
block into one archive request. The creators that walk the tree are the same
for every archive; each client registers only its *appliers*, one per attr
type, that write one attr into a block.
"""

from __future__ import annotations

from sunpy.net.attr import AttrAnd, AttrOr, AttrWalker, DataAttr

__all__ = ["block_walker", "append", "collect_values", "routes_to"]


def _create_or(wlk, tree):
    blocks = []
    for sub in tree.attrs:
        blocks.extend(wlk.create(sub))
    return blocks


def _create_and(wlk, tree):
    params: dict = {}
    for attr in (tree.attrs if isinstance(tree, AttrAnd) else [tree]):
        wlk.apply(attr, params)
    return [params]


def block_walker() -> AttrWalker:
    """A new `~sunpy.net.attr.AttrWalker` whose ``create`` returns a list of parameter dicts.

    Register appliers on it with ``@walker.add_applier(AttrType)``; an applier
    receives ``(walker, attr, params)`` and writes into ``params``.

    Examples
    --------
    >>> import sunpy.net.attrs as a
    >>> walker = block_walker()
    >>> @walker.add_applier(a.Level)
    ... def _(wlk, attr, params):
    ...     append(params, "level", attr.value)
    >>> walker.create(a.Level(1) | a.Level(2))
    [{'level': [1]}, {'level': [2]}]
    """
    walker = AttrWalker()
    walker.add_creator(AttrOr)(_create_or)
    walker.add_creator(AttrAnd, DataAttr)(_create_and)
    return walker


def append(params: dict, key: str, value) -> None:
    """Add ``value`` to the list ``params[key]`` (an attr may appear more than once in a block)."""
    params.setdefault(key, []).append(value)


def collect_values(walker: AttrWalker, keys: dict[type, str]) -> None:
    """Register, for each attr type, an applier that appends ``attr.value`` to ``params[key]``.

    Most attrs need nothing more; register a function of your own for the others.

    Examples
    --------
    >>> import sunpy.net.attrs as a
    >>> walker = block_walker()
    >>> collect_values(walker, {a.Level: "level", a.Provider: "provider"})
    >>> walker.create(a.Level(2) & a.Provider("X"))
    [{'level': [2], 'provider': ['X']}]
    """
    for attr_type, key in keys.items():
        walker.add_applier(attr_type)(
            lambda wlk, attr, params, key=key: append(params, key, attr.value))


def routes_to(query, own: tuple[type, ...], generic: tuple[type, ...]) -> bool:
    """The routing rule of every client's ``_can_handle_query``.

    A client answers only if it understands every attr of the query *and* at
    least one attr is of its own namespace (VSO and SOAR accept any core attrs,
    so a query of core attrs alone must stay with them). Values are not looked
    at here: they are checked in ``search``, where clear errors can be raised.

    Examples
    --------
    >>> import sunpy.net.attrs as a
    >>> routes_to([a.Level(2)], own=(a.Provider,), generic=(a.Level,))
    False
    >>> routes_to([a.Level(2), a.Provider("X")], own=(a.Provider,), generic=(a.Level,))
    True
    """
    supported = own + generic
    return (all(isinstance(attr, supported) for attr in query)
            and any(isinstance(attr, own) for attr in query))
