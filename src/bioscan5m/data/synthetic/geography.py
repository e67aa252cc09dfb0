"""Collection geography: 47 countries, their provinces and sampling sites, as in BIOSCAN-5M.

The countries and provinces are real (BIOSCAN-5M's Malaise-trap programme spans 47 countries); the record
share per country and the site coordinates are invented but plausible (sites scatter around a province's
approximate centre, in decimal degrees, WGS 84).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: (country, relative record share, ((province, latitude, longitude), ...)), biggest contributors first.
COUNTRIES: tuple[tuple[str, float, tuple[tuple[str, float, float], ...]], ...] = (
    (
        "Costa Rica",
        30.0,
        (
            ("Guanacaste", 10.8, -85.4),
            ("Alajuela", 10.6, -84.5),
            ("Puntarenas", 9.0, -83.3),
            ("Limon", 10.0, -83.3),
            ("Heredia", 10.4, -84.0),
            ("San Jose", 9.4, -83.8),
        ),
    ),
    (
        "Canada",
        20.0,
        (
            ("Ontario", 43.6, -80.2),
            ("British Columbia", 49.3, -123.1),
            ("Quebec", 46.8, -71.2),
            ("Alberta", 51.0, -114.1),
            ("Manitoba", 58.7, -94.2),
            ("Nova Scotia", 44.6, -63.6),
            ("Yukon Territory", 60.7, -135.0),
            ("Nunavut", 69.1, -105.1),
        ),
    ),
    (
        "South Africa",
        10.0,
        (
            ("Western Cape", -33.9, 18.9),
            ("KwaZulu-Natal", -29.6, 30.4),
            ("Limpopo", -23.9, 29.5),
            ("Mpumalanga", -25.5, 30.9),
        ),
    ),
    (
        "Thailand",
        7.0,
        (("Chiang Mai", 18.8, 98.9), ("Nakhon Ratchasima", 14.5, 101.4), ("Chanthaburi", 12.6, 102.1)),
    ),
    ("Pakistan", 5.0, (("Punjab", 31.5, 73.1), ("Khyber Pakhtunkhwa", 34.0, 71.5), ("Sindh", 25.4, 68.4))),
    (
        "Australia",
        5.0,
        (
            ("Queensland", -17.2, 145.6),
            ("New South Wales", -33.7, 150.3),
            ("Victoria", -37.8, 145.0),
            ("Western Australia", -31.9, 116.0),
            ("Northern Territory", -12.5, 131.0),
        ),
    ),
    ("Kenya", 3.0, (("Kakamega", 0.3, 34.8), ("Nairobi", -1.3, 36.8), ("Kwale", -4.2, 39.5))),
    ("Madagascar", 2.0, (("Toamasina", -18.9, 48.4), ("Fianarantsoa", -21.3, 47.4))),
    ("Malaysia", 2.0, (("Sabah", 5.3, 116.7), ("Pahang", 4.5, 102.4))),
    ("Argentina", 1.5, (("Misiones", -25.7, -54.4), ("Tucuman", -26.8, -65.3))),
    ("Brazil", 1.5, (("Amazonas", -3.1, -60.0), ("Sao Paulo", -23.5, -46.6), ("Bahia", -14.8, -39.2))),
    ("Ecuador", 1.2, (("Napo", -0.9, -77.8), ("Pichincha", -0.1, -78.7))),
    ("Peru", 1.0, (("Madre de Dios", -12.6, -69.2), ("Cusco", -13.2, -72.5))),
    ("Mexico", 1.0, (("Chiapas", 16.7, -92.6), ("Veracruz", 19.5, -96.9), ("Yucatan", 20.7, -88.9))),
    ("Honduras", 0.8, (("Atlantida", 15.7, -86.8),)),
    ("Panama", 0.8, (("Colon", 9.2, -79.8), ("Chiriqui", 8.7, -82.4))),
    ("Guatemala", 0.6, (("Peten", 17.2, -89.6),)),
    (
        "United States",
        0.6,
        (("California", 37.9, -122.2), ("Florida", 28.0, -81.6), ("New York", 42.4, -76.5)),
    ),
    ("Germany", 0.5, (("Bavaria", 48.1, 11.6), ("Saxony", 51.1, 13.7))),
    ("Norway", 0.4, (("Viken", 59.9, 10.7),)),
    ("Finland", 0.4, (("Uusimaa", 60.2, 24.9),)),
    ("Saudi Arabia", 0.4, (("Asir", 18.2, 42.5),)),
    ("Egypt", 0.3, (("Sinai", 28.5, 34.0),)),
    ("Tanzania", 0.3, (("Morogoro", -6.8, 37.7),)),
    ("Uganda", 0.3, (("Western", 0.6, 30.3),)),
    ("Rwanda", 0.3, (("Northern", -1.6, 29.7),)),
    ("Ghana", 0.3, (("Ashanti", 6.7, -1.6),)),
    ("Gabon", 0.2, (("Ogooue-Ivindo", 0.5, 12.8),)),
    ("Cameroon", 0.2, (("Centre", 3.9, 11.5),)),
    ("India", 0.3, (("Karnataka", 12.9, 77.6), ("Uttarakhand", 30.3, 78.0))),
    ("Sri Lanka", 0.2, (("Central", 7.3, 80.6),)),
    ("Vietnam", 0.2, (("Lam Dong", 11.9, 108.4),)),
    ("Indonesia", 0.2, (("West Java", -6.9, 107.6),)),
    ("Papua New Guinea", 0.2, (("Madang", -5.2, 145.8),)),
    ("New Zealand", 0.2, (("Canterbury", -43.5, 172.6),)),
    ("Japan", 0.2, (("Okinawa", 26.5, 128.0),)),
    ("China", 0.2, (("Yunnan", 22.0, 100.8),)),
    ("Chile", 0.2, (("Los Lagos", -41.5, -72.9),)),
    ("Colombia", 0.2, (("Antioquia", 6.2, -75.6),)),
    ("Bolivia", 0.1, (("La Paz", -16.3, -67.8),)),
    ("French Guiana", 0.1, (("Cayenne", 4.9, -52.3),)),
    ("Greenland", 0.1, (("Sermersooq", 64.2, -51.7),)),
    ("Iceland", 0.1, (("Capital Region", 64.1, -21.9),)),
    ("Israel", 0.1, (("Northern District", 32.9, 35.3),)),
    ("Portugal", 0.1, (("Azores", 37.8, -25.5),)),
    ("Italy", 0.1, (("Sicily", 37.6, 14.0),)),
    ("Bulgaria", 0.1, (("Sofia", 42.7, 23.3),)),
)


@dataclass(frozen=True)
class Sites:
    """Sampling sites as parallel arrays (one row per site).

    ``country``/``province`` index :data:`COUNTRIES` and its province tuples; ``province_name`` is the name
    written to the metadata (empty where the collector gave none); ``lat``/``lon`` in decimal degrees.
    """

    country: np.ndarray  # int16, index into COUNTRIES
    province_name: np.ndarray  # object (str)
    lat: np.ndarray  # float64
    lon: np.ndarray  # float64
    weight: np.ndarray  # float64, relative share of records within the country

    def __len__(self) -> int:
        return len(self.country)


def country_names() -> list[str]:
    """The 47 country names, in :data:`COUNTRIES` order."""
    return [name for name, _, _ in COUNTRIES]


def country_shares() -> np.ndarray:
    """Each country's share of records (sums to 1)."""
    shares = np.array([share for _, share, _ in COUNTRIES], dtype=np.float64)
    return shares / shares.sum()


def make_sites(rng: np.random.Generator, n_records: int) -> Sites:
    """Sampling sites for a dataset of ``n_records``: about one per 3,000 records (BIOSCAN-5M: 1,650),
    at least one per province, spread within about half a degree of the province centre."""
    per_country = np.maximum(1, np.round(country_shares() * n_records / 3000)).astype(int)
    country, province, lat, lon, weight = [], [], [], [], []
    for index, ((_, _, provinces), n_sites) in enumerate(zip(COUNTRIES, per_country)):
        n_sites = max(n_sites, len(provinces))
        picks = np.concatenate(
            [np.arange(len(provinces)), rng.integers(0, len(provinces), n_sites - len(provinces))]
        )
        for pick in picks.tolist():
            name, plat, plon = provinces[pick]
            country.append(index)
            # A few records carry no province, as in the real metadata.
            province.append("" if rng.random() < 0.02 else name)
            lat.append(float(np.clip(plat + rng.normal(0, 0.45), -89.9, 89.9)))
            lon.append(float(((plon + rng.normal(0, 0.45)) + 180) % 360 - 180))
            weight.append(rng.pareto(1.5) + 0.2)  # a few heavily sampled sites, many light ones
    return Sites(
        country=np.array(country, dtype=np.int16),
        province_name=np.array(province, dtype=object),
        lat=np.round(np.array(lat), 3),
        lon=np.round(np.array(lon), 3),
        weight=np.array(weight),
    )
