export function writeReport(_out: string, _names: string[]): string[] { return []; }
