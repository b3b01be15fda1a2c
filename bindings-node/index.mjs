// The ESM entry point: the same package as `require('isolette')`.
import { createRequire } from 'node:module'

const isolette = createRequire(import.meta.url)('./index.js')

export const { Image, Store, Outcome, Running, Sandbox, Project, RunningProject, IsoletteError, run, spawn, cleanup, STATUSES, OPTIONS } = isolette
export default isolette
