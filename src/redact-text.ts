/**
 * E-mail addresses masked out of free text an operator sees (HubSpot's messages in dead letters and cart
 * errors quote the value they refused, e-mails included). Everything else in the text stays readable.
 */
const EMAIL = /[^\s@"'<>(),;:]+@[^\s@"'<>(),;:]+\.[^\s@"'<>(),;:]+/g;

export function maskEmails(text: string): string {
  return text.replace(EMAIL, "•••@•••");
}
