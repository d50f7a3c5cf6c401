/**
 * Test doubles of the spawner, shipped apart from it (`@sbx/spawner/testing`): an in-memory
 * backend with fake runnerds, the whole spawner served in-process on it, and the conformance
 * suite every backend passes. Never imported by the spawner itself.
 */
export { type ConformanceHarness, runBackendConformance } from "./backend-conformance.js";
export { FakeRunnerd, type RouteAnswer } from "./fake-runnerd.js";
export { type InProcessSpawner, startInProcessSpawner, TEST_KEY } from "./in-process-spawner.js";
export { ManualClock } from "./manual-clock.js";
export { MemoryBackend, type MemoryBackendOptions } from "./memory-backend.js";
