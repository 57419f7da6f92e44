"""The service's request and response bodies (pydantic models: they make the OpenAPI schema at ``/docs``)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class PredictJSON(BaseModel):
    """``POST /v1/predict`` as JSON: the views of one place, each a base64 string or a ``data:`` URI."""

    model_config = ConfigDict(extra="forbid")
    images: list[str] = Field(..., min_length=1, description="1 to max_views base64 images (JPEG, PNG or WebP) "
                              "of one place, e.g. the 4 compass views of a panorama")


class PredictParams(BaseModel):
    """The query parameters of ``POST /v1/predict`` (a new parameter is one more field here)."""

    top_k: int = Field(5, ge=1, description="candidates to return (at most the server's max_top_k, see /v1/info)")
    method: str | None = Field(None, max_length=64, description="placing method, one of the model's (GET /v1/info: "
                               "methods); default: its default_method")
    refine: bool | None = Field(None, description="older alias: false means method=cell; true or absent, the "
                                "model's default method")
    map: bool = Field(False, description="add the probability map (GeoJSON points)")
    polygons: bool = Field(False, description="with map: every cell polygon too (large; not on a server with a "
                           "precision cap)")


class Candidate(BaseModel):
    lat: float
    lon: float
    probability: float = Field(..., ge=0, le=1, description="the placing method's probability of this candidate "
                               "(candidates are in its order; on a server with a precision cap, the head's "
                               "probability of the box)")
    cell_probability: float | None = Field(None, ge=0, le=1, description="the geocell head's probability of the "
                                           "candidate's cell (withheld with a precision cap)")
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
    """Where the first view with EXIF GPS says it was taken, and how far the guess is from it (never stored).

    On a server with a precision cap the position is snapped to the cap's grid like every other location, and the
    distance is between the snapped position and the snapped guess."""

    lat: float
    lon: float
    view: int = Field(..., description="index of the view whose EXIF held the position")
    distance_km: float


class Timings(BaseModel):
    decode_ms: float
    queue_ms: float
    model_ms: float
    total_ms: float
    batch_images: int = Field(..., description="images in the model call that served this request")


class PredictResponse(BaseModel):
    guess: Guess
    confidence: float = Field(..., ge=0, le=1, description="probability of the guessed cell (or box)")
    top_k: list[Candidate]
    aux: dict[str, Any] = Field(default_factory=dict, description="auxiliary predictions when the model has "
                                "those heads (climate, month, elevation_m, ...)")
    method: str = Field("cell", description="the placing method that made the guess (GET /v1/info: methods)")
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
    guesses_by_country: dict[str, int] = Field(..., description="this client's guesses (its API key's, or its "
                                               "address's without keys) by country; never other clients'")


class Health(BaseModel):
    status: str
    detail: str | None = None


class Limits(BaseModel):
    max_views: int
    max_image_bytes: int
    max_pixels: int
    max_aspect_ratio: float = Field(..., description="long side / short side of an accepted image")
    max_top_k: int
    accepted_formats: list[str]
    rate_limit_per_minute: float | None
    request_timeout_s: float
    read_timeout_s: float = Field(..., description="the headers, then the body, must arrive within this each")
    max_header_bytes: int


class ServiceInfo(BaseModel):
    model: str
    backbone: str
    n_cells: int
    auth_required: bool
    precision_km: float | None
    cell_polygons: bool = Field(..., description="whether GET /v1/cells serves the cell polygons")
    refiner: bool = Field(..., description="whether the model can refine (the refine parameter has an effect)")
    methods: list[str] = Field(..., description="the placing methods this model can use (the method parameter)")
    default_method: str = Field(..., description="the method used when none is named")
    limits: Limits
    intended_use: str
