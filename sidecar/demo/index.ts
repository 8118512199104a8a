export async function runDemo(_o: { dataDir: string; traffic: boolean }): Promise<void> {}
