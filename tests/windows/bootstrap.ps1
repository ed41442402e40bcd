try { [Console]::InputEncoding = [Console]::OutputEncoding = New-Object System.Text.UTF8Encoding $false } catch { $null = $_ }
& ([ScriptBlock]::Create(($input | Out-String)))
