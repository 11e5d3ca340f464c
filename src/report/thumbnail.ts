// Thumbnails for the self-contained HTML pages: small JPEG data URLs made with sharp, so a page opens
// from disk without a server.
import sharp from 'sharp';

/** Small JPEG thumbnail (longer side `side` px) as a data URL; null when the file cannot be read. */
export async function thumbnail(file: string, side: number): Promise<string | null> {
  try {
    const buf = await sharp(file).rotate().resize(side, side, { fit: 'inside' }).jpeg({ quality: 72 }).toBuffer();
    return `data:image/jpeg;base64,${buf.toString('base64')}`;
  } catch {
    return null;
  }
}
