"""The service's request and response bodies (pydantic models: they make the OpenAPI schema at ``/docs``)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class PredictJSON(BaseModel):
    """``POST /v1/predict`` as JSON: the views of one place, each a base64 string or a ``data:`` URI."""

    model_config = ConfigDict(extra="forbid")
    images: list[str] = Field(..., min_length=1, description="1 to max_views base64 images (JPEG, PNG or WebP) "
                              "of one place, e.g. the 4 compass views of a panorama")


class Candidate(BaseModel):
    lat: float
    lon: float
    probability: float = Field(..., ge=0, le=1, description="posterior probability of the cell (or box), "
                               "calibrated when the model is")
    cell: int | None = Field(None, description="geocell index; withheld on a server with a precision cap")
    country: str | None = Field(None, description="ISO 3166 alpha-2 code of the cell's country")
    region: str | None = Field(None, description="the cell's first-level administrative area")


class Guess(BaseModel):
    lat: float
    lon: float
    country: str | None = None
    region: str | None = None
    cell: int | None = None


class ExifTruth(BaseModel):
    """Where the first view with EXIF GPS says it was taken, and how far the guess is from it (never stored)."""

    lat: float
    lon: float
    view: int = Field(..., description="index of the view whose EXIF held the position")
    distance_km: float


class Credible(BaseModel):
    """The smallest set of cells holding at least ``q`` of the posterior mass."""

    q: float = Field(..., gt=0, lt=1)
    mass: float = Field(..., ge=0, le=1, description="the mass the region holds")
    area_km2: float = Field(..., ge=0, description="its area, on an equal-area projection")
    n_cells: int
    cells: list[int] | None = Field(None, description="its cells, most probable first (withheld with a precision "
                                    "cap)")


class Timings(BaseModel):
    decode_ms: float
    queue_ms: float
    model_ms: float
    total_ms: float
    batch_images: int = Field(..., description="images in the model call that served this request")


class PredictResponse(BaseModel):
    guess: Guess
    objective: str = Field(..., description="what the guess optimises: mode (the placing method's answer), distance "
                           "(least expected km) or score (most expected GeoGuessr points)")
    confidence: float = Field(..., ge=0, le=1, description="posterior probability of the guessed cell (or box)")
    p_within: dict[str, float | None] | None = Field(None, description="P(the truth is within r km of the guess), "
                                                     "keys '1km' ... '2500km' (null below a precision cap; absent "
                                                     "without a gallery)")
    unseen: float | None = Field(None, ge=0, le=1, description="how unlike the validation photos this one is (the "
                                 "share of them closer to the training gallery); near 1: ground the model has not seen")
    expected_km: float = Field(..., ge=0, description="the posterior's expected distance from the guess to the truth")
    coordinate_decimals: int = Field(..., ge=0, le=5, description="decimals the posterior supports (about a tenth to "
                                     "one expected error); the page rounds to them")
    credible: Credible | None = None
    credible_region: dict[str, Any] | None = Field(None, description="with ?region=1: the credible region as a "
                                                   "GeoJSON Feature ((Multi)Polygon, cut at +-180; no geometry "
                                                   "when it spans more cells than the server outlines)")
    top_k: list[Candidate]
    aux: dict[str, Any] = Field(default_factory=dict, description="auxiliary predictions when the model has "
                                "those heads (climate, month, elevation_m, ...)")
    refined: bool = Field(False, description="whether the guess came from retrieval refinement (a training "
                          "location inside the chosen cell) rather than a cell centroid")
    head_guess: Guess = Field(..., description="the geocell head's own guess: the centroid of its most probable "
                              "cell (equal to the guess when not refined)")
    precision_km: float | None = Field(None, description="the server's precision cap, when it has one")
    views: int
    exif_gps: ExifTruth | None = None
    probability_map: dict[str, Any] | None = Field(None, description="GeoJSON FeatureCollection (with ?map=1)")
    timings: Timings


class ErrorDetail(BaseModel):
    kind: str = Field(..., description="machine-readable kind, e.g. not_an_image, too_many_pixels, busy")
    message: str = Field(..., description="what is wrong and what to do about it")


class ErrorResponse(BaseModel):
    error: ErrorDetail


class Percentiles(BaseModel):
    p50: float | None
    p90: float | None
    p99: float | None


class StatsResponse(BaseModel):
    uptime_s: float
    requests: int = Field(..., description="prediction requests received")
    served: int = Field(..., description="predictions answered with 200")
    errors: dict[str, int] = Field(..., description="refused or failed requests by kind")
    latency_ms: Percentiles = Field(..., description="over the last 1,000 answered predictions")
    queue_depth: int = Field(..., description="requests waiting for the model now")
    in_flight: int = Field(..., description="prediction requests admitted now")
    batches: int
    batch_images: dict[str, int] = Field(..., description="how many model calls had each number of images")
    guesses_by_country: dict[str, int]


class Health(BaseModel):
    status: str
    detail: str | None = None


class Limits(BaseModel):
    max_views: int
    max_image_bytes: int
    max_pixels: int
    max_top_k: int
    accepted_formats: list[str]
    rate_limit_per_minute: float | None
    request_timeout_s: float


class ServiceInfo(BaseModel):
    model: str
    backbone: str
    n_cells: int
    auth_required: bool
    precision_km: float | None
    cell_polygons: bool = Field(..., description="whether GET /v1/cells serves the cell polygons")
    refiner: bool = Field(..., description="whether the model can refine (the refine parameter has an effect)")
    guesses: list[str] = Field(..., description="accepted values of the guess parameter")
    default_guess: str
    calibrated: bool = Field(..., description="whether the probabilities come from a fitted calibration")
    aux_labels: dict[str, list[Any]] = Field(..., description="label, unit and decimals of each auxiliary value")
    limits: Limits
    intended_use: str
